"""Robot Framework keyword library over the campaign engine: ``Library    stslab.robot.StsLab``.

Robot suites drive the same :class:`~stslab.session.Campaign` and
:class:`~stslab.campaign.Runner` that ``stslab certify`` and the pytest plugin drive, so their
results land in the same hash-chained journal and the same record. Every keyword that acts on
the meter or checks it is one journal step (a :class:`~stslab.campaign.StepResult` with its
:class:`~stslab.campaign.Check` list) of a scenario named after the Robot test.

The library is a small core (:mod:`.library`) and keyword groups, one file per concern:
:mod:`.campaign` (open the campaign, run pack scenarios, skip), :mod:`.tokens` (mint and
enter), :mod:`.bench` (supply, load, waits, operator), :mod:`.observation` (read the meter),
:mod:`.verdicts` (judge it) and :mod:`.side_door` (SimLab's transport faults). They share one
:class:`~.context.CampaignContext`.
"""

from stslab.robot.faults import BenchFault, CampaignFault, FatalBenchFault
from stslab.robot.library import StsLab
from stslab.robot.settings import RUN_METADATA, VARIABLES, CampaignSettings

__all__ = [
    "RUN_METADATA",
    "VARIABLES",
    "BenchFault",
    "CampaignFault",
    "CampaignSettings",
    "FatalBenchFault",
    "StsLab",
]
