"""The study layer: typed configuration, the runner, the command line.

- :mod:`~impact.workflow.config`: the study configuration (``analyses/config/*.toml``), validated.
- :mod:`~impact.workflow.estimates`: the study's estimates on a prepared panel, as tidy tables.
- :mod:`~impact.workflow.pipeline`: :func:`~impact.workflow.pipeline.run_study` (``impact run``).
- :mod:`~impact.workflow.outputs`: the tables a run offers for release, with their evidence.
- :mod:`~impact.workflow.provenance`: the package versions recorded in a run's manifest.
- :mod:`~impact.workflow.cli`: the ``impact`` command (Typer), a thin layer over the above.

The estimators and data steps below this layer (:mod:`impact.panel`, :mod:`impact.did`,
:mod:`impact.bayes`, ...) take every choice as an argument; the study's choices live in the
configuration. The modules were at the top of the package before (``impact.estimates``,
``impact.pipeline``, ...); those names still import the same module objects
(:data:`impact.MOVED`).
"""
