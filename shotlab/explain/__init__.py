"""Explanations: Grad-CAM, Integrated Gradients, LIME, SHAP and their store (see shared/DESIGN.md)."""
