"""The console's screens: one per mode (1–5) plus the modals they open."""
