"""Argo Events on one machine: the local events gateway and its git hook.

The YAML under ``events/`` is the source of truth for both the cluster (EventBus,
EventSources, Sensor, RBAC) and this package, which serves the same webhook endpoints
on 127.0.0.1, evaluates the Sensor's filters and parameter mapping with Argo Events'
semantics, and starts ``cnai run`` for each accepted event.

Modules:

- :mod:`cnai.argo.semantics.gjson` (outside this package): the gjson paths the Sensor uses
- ``exprs`` filters are govaluate expressions, evaluated by :mod:`cnai.argo.semantics.govaluate`
- :mod:`cnai.events.filters`: data/expr filter evaluation
- :mod:`cnai.events.params`: trigger parameter resolution into Workflow arguments
- :mod:`cnai.events.spec`: loading the YAML and refusing what the gateway cannot honour
- :mod:`cnai.events.signature`: GitHub's HMAC-SHA256 signatures and bearer tokens
- :mod:`cnai.events.store`: the persistent delivery log and run queue
- :mod:`cnai.events.runner`: background runs, one at a time per branch
- :mod:`cnai.events.limits`: the gateway's limits and their settings
- :mod:`cnai.events.lock`: one gateway per home
- :mod:`cnai.events.server`: the aiohttp gateway
- :mod:`cnai.events.hook`: the git post-receive hook, its spool and its installer
- :mod:`cnai.events.lint`: schema validation and the Hera round-trip of the YAML
"""
