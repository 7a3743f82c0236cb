"""Pulse dashboard (Streamlit)."""
