"""`FeatureSettings`: eFEL's settings that the features of `bbpes.features` depend on,
with eFEL's defaults (`efel.settings.Settings`, eFEL 5.7)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class FeatureSettings:
    """eFEL's settings, by their meaning, with eFEL's defaults (its names in brackets).

    Immutable and hashable: a compiled extraction is keyed on it, so a new instance with
    the same values reuses the compiled program.

    **Fields:**

    - `threshold`: mV, spike detection: a spike is an upward crossing of it followed
      by a downward one ("Threshold", -20).
    - `derivative_threshold`: mV/ms, AP begin: where dV/dt rises past it for
      `derivative_window` samples ("DerivativeThreshold", 10).
    - `down_derivative_threshold`: mV/ms, AP end: where dV/dt, after its steepest fall,
      comes back above it ("DownDerivativeThreshold", -12).
    - `derivative_window`: samples dV/dt must stay above `derivative_threshold` after
      an AP begin ("DerivativeWindow", 3).
    - `interp_step`: ms, every trace is first linearly resampled onto this step, as
      eFEL does ("interp_step", 0.1).
    - `max_spikes`: the padding of the per-spike arrays (a fixed shape for `jit`; not an
      eFEL setting). A trace with more spikes gets NaN for its per-spike features in
      the hard form (`Spikecount` stays exact; `extract_arrays` says `truncated`); the
      soft form uses its first `max_spikes` spikes.
    - `voltage_base_start_perc`, `voltage_base_end_perc`: `voltage_base` averages the
      voltage from `start_perc * stim_start` to `end_perc * stim_start` (0.9, 1.0).
    - `voltage_base_mode`: "mean" or "median" ("voltage_base_mode", "mean").
    - `precision_threshold`: ms, slack on the end time of `voltage_base`'s window
      ("precision_threshold", 1e-10).
    - `ignore_first_ISI`: drop the first inter-spike interval in `ISI_CV` and
      `ISI_values` ("ignore_first_ISI", True).
    - `decay_start_after_stim`, `decay_end_after_stim`: ms after `stim_end`, the
      window of `decay_time_constant_after_stim` (1, 10).

    eFEL's `strict_stiminterval` is not offered: bbpes follows its default (False):
    spikes are detected in the whole trace.
    """

    threshold: float = -20.0
    derivative_threshold: float = 10.0
    down_derivative_threshold: float = -12.0
    derivative_window: int = 3
    interp_step: float = 0.1
    max_spikes: int = 64
    voltage_base_start_perc: float = 0.9
    voltage_base_end_perc: float = 1.0
    voltage_base_mode: str = "mean"
    precision_threshold: float = 1e-10
    ignore_first_ISI: bool = True
    decay_start_after_stim: float = 1.0
    decay_end_after_stim: float = 10.0

    def __post_init__(self) -> None:
        if not self.interp_step > 0:
            raise ConfigError(f"interp_step must be > 0 ms, got {self.interp_step}")
        if int(self.max_spikes) != self.max_spikes or self.max_spikes < 1:
            raise ConfigError(f"max_spikes must be a positive integer, got {self.max_spikes}")
        if int(self.derivative_window) != self.derivative_window or self.derivative_window < 1:
            raise ConfigError(
                f"derivative_window must be a positive integer, got {self.derivative_window}"
            )
        if self.voltage_base_mode not in ("mean", "median"):
            raise ConfigError(
                f"voltage_base_mode must be 'mean' or 'median', got {self.voltage_base_mode!r}"
            )
        if not self.voltage_base_start_perc < self.voltage_base_end_perc:
            raise ConfigError(
                "voltage_base_start_perc must be below voltage_base_end_perc, got "
                f"{self.voltage_base_start_perc} and {self.voltage_base_end_perc}"
            )
        if not self.decay_start_after_stim < self.decay_end_after_stim:
            raise ConfigError(
                "decay_start_after_stim must be below decay_end_after_stim, got "
                f"{self.decay_start_after_stim} and {self.decay_end_after_stim}"
            )

    def efel_settings(self) -> dict[str, float | int | str | bool]:
        """These settings under eFEL's names, for `efel.set_setting(name, value)`: the
        way to make the installed eFEL compute what bbpes computes."""
        return {
            "Threshold": self.threshold,
            "DerivativeThreshold": self.derivative_threshold,
            "DownDerivativeThreshold": self.down_derivative_threshold,
            "DerivativeWindow": self.derivative_window,
            "interp_step": self.interp_step,
            "voltage_base_start_perc": self.voltage_base_start_perc,
            "voltage_base_end_perc": self.voltage_base_end_perc,
            "voltage_base_mode": self.voltage_base_mode,
            "precision_threshold": self.precision_threshold,
            "ignore_first_ISI": self.ignore_first_ISI,
            "decay_start_after_stim": self.decay_start_after_stim,
            "decay_end_after_stim": self.decay_end_after_stim,
            "strict_stiminterval": False,
        }
