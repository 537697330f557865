"""The moderation service: `shotlab serve BUNDLE` (docs/serve.md)."""
