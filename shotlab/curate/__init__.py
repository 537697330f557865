"""Curation: importers, Roboflow, exports and the FiftyOne App."""
