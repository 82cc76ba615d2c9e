"""`make bench`: what one Send costs the gateway, next to its floor and next to Apprise.

The machine is shared and noisy, so absolute times drift between runs; what the bench reports
are ratios measured in the same run (gateway CPU per Send over the floor's, gateway throughput
over Apprise's), which hold. Every party runs in its own process: the vendor sandbox, the gRPC
echo floor, the gateway and the load generator, so the CPU each one spends is read from the OS
without the others mixed in.
"""
