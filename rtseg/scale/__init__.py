"""Scale-out: ``rtseg run --ray`` segments many sources across a Ray cluster, one whole source per worker.

:func:`rtseg.scale.cluster.run_on_ray` is the entry point (it imports Ray); :mod:`rtseg.scale.plan` holds what
is decided without Ray (tasks, resume, resources, tables); :mod:`rtseg.scale.worker` the worker actor, a
client of :func:`rtseg.load_model` and :func:`rtseg.run`.
"""
