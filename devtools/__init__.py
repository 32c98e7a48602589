"""Development tooling: the demo's git repositories and webhook receiver. Not part of the app."""
