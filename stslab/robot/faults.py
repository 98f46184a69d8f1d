"""The exceptions a keyword raises when the meter is not to blame: Robot reads their
``ROBOT_*`` attributes to continue, or to stop the run."""


class BenchFault(RuntimeError):
    """A fault, not a verdict: a device did not answer, a reading was unusable, a token
    could not be minted. The step is ERROR in the record, never FAIL; the test stops and
    the run goes on."""

    ROBOT_CONTINUE_ON_FAILURE = False
    ROBOT_SUPPRESS_NAME = False


class FatalBenchFault(BenchFault):
    """A fault under the ``on_fault=stop`` policy: Robot stops the run (teardown and the
    record still happen)."""

    ROBOT_EXIT_ON_FAILURE = True


class CampaignFault(RuntimeError):
    """The campaign cannot open (bad bench, DUT, job or pack, a refused accredited run, a
    second campaign in one run): nothing can be tested, so Robot stops the run."""

    ROBOT_EXIT_ON_FAILURE = True
    ROBOT_SUPPRESS_NAME = False
