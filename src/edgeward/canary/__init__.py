"""Progressive delivery: the canary judge and controller (sans-I/O), the per-arm figures the
data plane gathers, the filter that picks an arm, and the shell that runs a canary."""
