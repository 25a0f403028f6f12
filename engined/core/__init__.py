"""The part of engined a service imports: stdlib and pydantic only, never grpc or Prometheus."""
