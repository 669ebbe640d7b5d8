"""The hub's components, named by module: the supervisor starts them as processes.

Names only, never imports: ``hub`` does not depend on the components it runs
(docs/architecture.md, Layout); each runs as ``python -m <module>``, which is also how it
is deployed and scaled out.
"""

from __future__ import annotations

COMPONENTS: dict[str, str] = {
    "api": "connectors.api",
    "passport": "services.passport",
    "routing": "services.routing",
    "synthetic": "connectors.synthetic",
    # Watches <data dir>/inbox for dropped files; `passport-hub ingest` runs it by hand.
    "file_drop": "connectors.file_drop",
    # Pushes lead events to the resellers' CRMs (Standard Webhooks, with retries).
    "crm_webhook": "connectors.crm_webhook",
}

#: What ``passport-hub up`` runs (the synthetic source only with ``--demo``): the file drop
#: watches ``<data dir>/inbox``, so a file dropped there on a dev stack is read as in
#: production.
CORE = ("api", "passport", "routing", "crm_webhook", "file_drop")
