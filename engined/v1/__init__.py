"""Generated protobuf and gRPC modules of the engined.v1 API (protos/engined/v1/engined.proto).

Made by scripts/gen-protos; never edit by hand: change the proto and regenerate
(tests/unit/test_proto_drift.py fails when these files and the proto disagree).
"""
