"""What every stage shares: errors, the workspace, safe image decoding, the FiftyOne store."""
