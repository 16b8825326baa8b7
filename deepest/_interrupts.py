"""An interrupt (Ctrl-C, SIGINT) that a callback swallowed, delivered again.

Python raises KeyboardInterrupt wherever the main thread is when the signal is handled. When
that is inside a garbage-collector callback (JAX registers one) or a `__del__`, Python reports
the exception as "unraisable", prints its traceback and goes on as if nothing had happened:
measured, one of the first SIGINTs sent to a sweep was lost so. The hook installed here
re-sends the signal instead, to be raised at the next point of ordinary code.
"""

import os
import signal
import sys


def redeliver_swallowed_interrupts(handler=signal.default_int_handler) -> None:
    """For this process: a KeyboardInterrupt reported as unraisable re-sends SIGINT to the
    process, under `handler` (which may have been replaced since, e.g. by SIG_IGN, by the
    handler that raised it); any other unraisable exception is reported as before."""
    report = sys.unraisablehook

    def hook(unraisable):
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            signal.signal(signal.SIGINT, handler)
            os.kill(os.getpid(), signal.SIGINT)
        else:
            report(unraisable)

    sys.unraisablehook = hook
