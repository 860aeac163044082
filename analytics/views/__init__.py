"""HTTP views, one blueprint per module, registered in the app factory."""
