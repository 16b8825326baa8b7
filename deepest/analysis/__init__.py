"""Analysis of solver-networks as dynamical systems: spectra, pseudospectra, gradients, Lyapunov
exponents, energy drift and reversibility.

Every function is pure, takes a model and data, and returns a named result (an eqx.Module
with documented fields).
"""

from . import krylov as krylov
from .gradients import GRADIENT_REGIMES as GRADIENT_REGIMES
from .gradients import REGIME_FACTOR as REGIME_FACTOR
from .gradients import GradientNorms as GradientNorms
from .gradients import InputOutputSpectrum as InputOutputSpectrum
from .gradients import gradient_norms as gradient_norms
from .gradients import io_jacobian_singular_values as io_jacobian_singular_values
from .lyapunov import LyapunovSpectrum as LyapunovSpectrum
from .lyapunov import flow_lyapunov_spectrum as flow_lyapunov_spectrum
from .lyapunov import layer_lyapunov_spectrum as layer_lyapunov_spectrum
from .lyapunov import lyapunov_spectrum as lyapunov_spectrum
from .pseudospectra import KREISS_RADII as KREISS_RADII
from .pseudospectra import PSEUDOSPECTRA_LIMIT as PSEUDOSPECTRA_LIMIT
from .pseudospectra import FieldPseudospectra as FieldPseudospectra
from .pseudospectra import LayerPseudospectra as LayerPseudospectra
from .pseudospectra import TransientGrowth as TransientGrowth
from .pseudospectra import complex_grid as complex_grid
from .pseudospectra import departure_from_normality as departure_from_normality
from .pseudospectra import field_pseudospectra as field_pseudospectra
from .pseudospectra import kreiss_constant as kreiss_constant
from .pseudospectra import layer_pseudospectra as layer_pseudospectra
from .pseudospectra import sigma_min_grid as sigma_min_grid
from .pseudospectra import transient_growth as transient_growth
from .report import StabilityReport as StabilityReport
from .report import stability_report as stability_report
from .spectra import DENSE_LIMIT as DENSE_LIMIT
from .spectra import DUPLICATE_TOLERANCE as DUPLICATE_TOLERANCE
from .spectra import JacobianSpectrum as JacobianSpectrum
from .spectra import LayerMapSpectrum as LayerMapSpectrum
from .spectra import jacobian_spectrum as jacobian_spectrum
from .spectra import layer_map_spectrum as layer_map_spectrum
from .structure import EnergyDrift as EnergyDrift
from .structure import Reversibility as Reversibility
from .structure import energy_drift as energy_drift
from .structure import reversibility_error as reversibility_error
