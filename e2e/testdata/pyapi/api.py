"""Ray Serve's API on the platform: deployment options that become the
spec, methods and streams through handles, user_config through
reconfigure, @serve.batch, and errors that reach the caller."""

from sluice import serve
from sluice.replica import current


@serve.deployment(
    user_config={"greeting": "howdy"},
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},
    ray_actor_options={"num_cpus": 0.25, "memory": 64 << 20},
    max_ongoing_requests=16,
    health_check_period_s=1,
)
class Greeter:
    def __init__(self):
        self.greeting = "hello"
        self.sizes = []

    def reconfigure(self, cfg):
        self.greeting = cfg["greeting"]

    def check_health(self):
        pass

    def __call__(self, name):
        return f"{self.greeting} {name}"

    def say_hello(self, name):
        return f"{self.greeting}, {name}, from say_hello"

    def count(self, n):
        yield from range(n)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.1)
    async def double(self, xs):
        self.sizes.append(len(xs))
        if -1 in xs:
            raise ValueError(f"a bad item among {len(xs)}")
        return [2 * x for x in xs]

    def batch_sizes(self, _):
        return self.sizes

    def boom(self, _):
        raise ValueError("no such greeting")

    def greet(self, first, last, *, punct="."):
        return f"{self.greeting}, {first} {last}{punct}"

    def reply_topic(self, _):
        # Where this call's answer goes: the gateway's reply topic when
        # Front handed the call over, Front's own when Front awaits it.
        return current().envelope.reply_to


@serve.deployment(max_ongoing_requests=32)
class Front:
    def __init__(self, greeter):
        self.greeter = greeter

    async def __call__(self, body):
        op = body["op"]
        if op == "hello":
            return await self.greeter.say_hello.remote(body["name"])
        if op == "count":
            return [i async for i in self.greeter.options(stream=True).count.remote(body["n"])]
        if op == "double":
            rs = [self.greeter.double.remote(x) for x in body["xs"]]
            out = []
            for r in rs:
                try:
                    out.append(await r)
                except Exception as exc:
                    out.append(type(exc).__name__ + ": " + str(exc))
            return {"doubled": out, "sizes": await self.greeter.batch_sizes.remote(None)}
        if op == "chain":  # forwarded: Greeter's first answer goes straight to its second call
            first = self.greeter.remote(body["name"])
            second = await self.greeter.remote(first)
            try:
                await first
            except serve.Forwarded:
                return second + " (forwarded)"
            return second
        if op == "args":  # several and keyword arguments, one a response
            return await self.greeter.greet.remote(body["first"], self.greeter.remote(body["last"]), punct="!")
        if op == "boom":
            return await self.greeter.boom.remote(None)
        if op == "tail":  # a tail call: handed over, Greeter answers the gateway
            return await self.greeter.reply_topic.remote(None)
        if op == "kept":  # the answer is used here: Greeter answers Front
            topic = await self.greeter.reply_topic.remote(None)
            return topic
        if op == "missing":
            return await self.greeter.options(method_name="nope").remote(None)
        return await self.greeter.remote(body["name"])


app = Front.bind(Greeter.bind())
