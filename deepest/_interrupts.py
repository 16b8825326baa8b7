"""Interrupts (Ctrl-C, SIGINT) that a callback swallowed, raised again at the next safe point.

Python raises KeyboardInterrupt wherever the main thread is when the signal is handled. When
that is inside a garbage-collector callback (JAX registers one) or a `__del__`, Python reports
the exception as "unraisable", prints its traceback and goes on as if nothing had happened:
measured, one of the first SIGINTs sent to a sweep was lost so. Re-sending the signal from the
report does not help (it is handled inside the report, and swallowed there too). Instead the
hook installed here keeps it, and the training loop and the runner raise it at their next
step (`raise_if_swallowed`), a point where it stops the work cleanly.
"""

import sys
import threading

_swallowed = threading.Event()


def keep_swallowed_interrupts() -> None:
    """For this process: a KeyboardInterrupt reported as unraisable is kept, unprinted, for
    `raise_if_swallowed`; any other unraisable exception is reported as before."""
    report = sys.unraisablehook
    if getattr(report, "keeps_interrupts", False):
        return

    def hook(unraisable):
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _swallowed.set()
        else:
            report(unraisable)

    hook.keeps_interrupts = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def raise_if_swallowed() -> None:
    """Raise the KeyboardInterrupt a callback swallowed since the last call, if one did."""
    if _swallowed.is_set():
        _swallowed.clear()
        raise KeyboardInterrupt
