"""The crash campaign (``make reliability``): kill every component during a realistic flow,
then prove that nothing was lost, doubled or let through (issue 13; docs/reliability.md).

Modules, in the order a campaign uses them:

- ``plan``: the seeded input (resellers, webhooks, enrolments, training, offers, privacy);
- ``oracle``: what the programme's rules say must come of it, independently of the hub;
- ``processes``: each component as its own process, killed and restarted alone;
- ``partners``, ``flow``: partners over real HTTP and the inbox, phase by phase;
- ``chaos``: the seeded kills, in turn over every component;
- ``tap``, ``results``: what the hub wrote and served;
- ``checks``: the verdict (against the oracle, the invariants and the crash-free run);
- ``run``, ``campaign``: one run, then the crash-free and the killed runs of each plan;
- ``soak`` (``--long``): half an hour of steady traffic with a kill a minute;
- ``report``: the tables, on the terminal and in docs/reliability.md.
"""
