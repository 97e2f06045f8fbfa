"""The policy pack's modules: rules, their settings, the smoke sample, the stacks' last outputs."""
