"""Meter simulator: pseudo-terminals (or a file, or Kafka) that behave like Linky meters.

* ``model``: meter models (historic/standard, mono/tri, consumer/producer, BASE/HP-HC/Tempo),
  load curves, solar, indexes integrated from the power they report.
* ``line``: pty lines (with wrong-baud garbage and unplug/replug) and file output.
* ``runner``: pacing, ground truth, ``run_simulated_meters`` and ``spawn_simulator``.

CLI: ``teleinfo simulate`` (teleinfo/commands/simulate.py); docs/edge.md "Simulator".
"""

from teleinfo.simulator.model import Meter, MeterSpec, default_specs, parse_meter_spec, tempo_colour
from teleinfo.simulator.runner import SimulationOptions, run_simulated_meters, spawn_simulator

__all__ = ["Meter", "MeterSpec", "default_specs", "parse_meter_spec", "tempo_colour",
           "SimulationOptions", "run_simulated_meters", "spawn_simulator"]
