"""Export and publish: MindFormers YAML + MindRecord, HF <-> MindSpore checkpoints, object-storage publishing."""
