"""An option of Ray Serve's that Sluice has no meaning for."""

from sluice import serve


@serve.deployment(max_queued_requests=100)
class Queued:
    def __call__(self, x):
        return x


app = Queued.bind()
