"""The shared core of lotus: errors, the observation/action schema, filters, units, file helpers, the CLI root.

Every other package builds on it; it imports none of them, and neither gymnasium nor torch.
"""
