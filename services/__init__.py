"""The stream processors: passport (per business) and routing (per lead); they meet on topics."""
