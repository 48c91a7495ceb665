"""Neuroptimus test case 1's soma built in Python, with the user mechanism `userhh`
(mechanisms/userhh.mod; bbpes loads it before calling `soma`):

    bbpes run fit-neuron --set cell=examples/neuron_cell/build.py:soma \\
        --set mechanisms=examples/neuron_cell/mechanisms \\
        --set parameters=gnabar=soma.gnabar_userhh,gkbar=soma.gkbar_userhh,gl=soma.gl_userhh
"""

from neuron import h


def soma(diam: float = 10.0, length: float = 100.0):
    """One section (one segment, `diam` x `length` µm, cm 1 µF/cm²) with `userhh`: the
    recording site, returned to bbpes."""
    section = h.Section(name="soma")
    section.nseg, section.diam, section.L, section.cm = 1, diam, length, 1.0
    section.insert("userhh")
    return section
