"""The REST API, compatible with Kazoo's ``cb_tasks`` (contract section 8): ``kzconsole serve``.

A thin layer over the engine facade (``kzconsole.engine``): the same checks, statuses and errors
as the command line, reshaped into Crossbar's envelope. Nothing here knows how a job runs.

Imported only by ``kzconsole serve`` and ``kzconsole api-keys``: the other commands never load the
web stack.
"""
