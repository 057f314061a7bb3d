"""The guest ABI of the HVM: every number guest code and the VMM must agree on (DESIGN.md section 8).

The C header the guest code includes is generated from this module; keep it the one source of truth.
"""
HVM_PORT = 0xF00D            # hypercall: out %eax, (%dx) with DX = HVM_PORT, EAX = number
HIGH_BASE = 0xFFFF_8000_0000_0000   # HRT higher-half identity map: physical P at HIGH_BASE + P
