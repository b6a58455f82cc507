"""The chaos soak (issue 13): two `syncd run` replicas under churn, rotations and faults, judged
by an observer of its own. `python -m soak --duration 20m --seed N --out soak/results`."""
