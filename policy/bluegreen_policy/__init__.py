"""The policy pack's modules: the rules (rules.py, with what they observe of a resource in
observed.py), their settings (settings.py, read by section_reader.py), the judge, the smoke
sample, the stacks' last outputs."""
