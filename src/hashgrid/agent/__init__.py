"""The node agent: joins a site, dials out to the control plane, runs and watches engines."""
