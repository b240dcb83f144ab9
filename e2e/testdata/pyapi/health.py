"""A deployment whose health check fails once: when the file its
user_config names exists, check_health removes it and raises; the
platform starts another replica process, which is healthy."""

import os

from sluice import serve


@serve.deployment(health_check_period_s=0.5, user_config={"marker": ""})
class Patient:
    def __init__(self):
        self.marker = ""

    def reconfigure(self, cfg):
        self.marker = cfg["marker"]

    def check_health(self):
        if self.marker and os.path.exists(self.marker):
            os.remove(self.marker)
            raise RuntimeError("the marker says sick")

    def __call__(self, _):
        return os.getpid()


app = Patient.bind()
