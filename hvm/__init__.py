"""mvemu: the hybrid virtual machine (the VMM)."""
__version__ = "0.1.0"
