"""The what-if simulator of the routing policy: replay a year of leads under other knobs.

``passport-hub routing simulate`` (``python -m services.routing.simulate``) runs
lead requests and answers (a synthetic programme year, a JSONL recording, or a
running hub's topics) through one or more policies side by side, each with the
real ``Router`` over a simulated clock, and reports per policy how fair the
shares were (received against entitlement, Gini), the SLA breaches, the hops
and the national queue, as a terminal table and a self-contained HTML page.

Modules: ``inputs`` (the contract: what a replay takes, JSONL and topic
readers), ``population`` (the synthetic year), ``answers`` (the resellers'
answer model), ``policies`` (the knobs), ``replay`` (the simulated clock),
``metrics``, ``table`` (terminal) and ``report`` (HTML).
"""
