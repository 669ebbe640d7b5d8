"""Per-business passport state: enrolment, completed modules, offers; emits snapshots and leads."""
