"""Value types and small pure helpers every layer may use: nothing here imports another syncd package."""
