"""Electrophysiology features of voltage traces in JAX, with eFEL's names and
definitions (hard form) and differentiable relaxations of them (soft form), for fitting
neuron models to recordings.

```python
from bbpes.features import extract
values = extract(v, dt=0.025, stim_start=100.0, stim_end=600.0,
                 names=["Spikecount", "AP_amplitude", "ISI_CV"])
```

- `extract`: per-trace feature values for any batch of traces, one compiled program.
- `extract_arrays`: eFEL's per-spike arrays (peak, AHP, AP begin... indices).
- `FeatureSettings`: eFEL's settings with eFEL's defaults.
- `FEATURES`: the names supported; `is_per_spike(name)`: read from per-spike arrays.
- `TOLERANCES`: the agreement with eFEL measured by the test suite, per feature.
"""

from .extract import ALIASES as ALIASES
from .extract import FEATURES as FEATURES
from .extract import SpikeArrays as SpikeArrays
from .extract import extract as extract
from .extract import extract_arrays as extract_arrays
from .extract import is_per_spike as is_per_spike
from .settings import FeatureSettings as FeatureSettings
from .tolerances import SOFT_TOLERANCES as SOFT_TOLERANCES
from .tolerances import TOLERANCES as TOLERANCES
