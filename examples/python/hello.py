# A language classifier in front of two greeters: the ingress reads the
# HTTP request's JSON and asks the greeter of the language it names.
# Ray Serve code; only the imports name sluice. As in Ray Serve, the
# ingress's unannotated http_request is the HTTP request (a Starlette
# Request).
#
#   sluice deploy --python . --import-path hello:language_classifier
#   curl -d '{"language":"spanish","name":"Dora"}' localhost:8000/py/hello
from sluice import serve
from sluice.serve.handle import DeploymentHandle


@serve.deployment
class LanguageClassifier:
    def __init__(self, english: DeploymentHandle, spanish: DeploymentHandle):
        self.english = english
        self.spanish = spanish

    async def __call__(self, http_request):
        body = await http_request.json()
        language, name = body["language"], body["name"]
        if language == "english":
            response = self.english.say_hello.remote(name)
        elif language == "spanish":
            response = self.spanish.say_hello.remote(name)
        else:
            return f"Unknown language {language!r}: try english or spanish."
        return await response


@serve.deployment
class EnglishGreeter:
    def say_hello(self, name: str) -> str:
        return f"Hello {name}"


@serve.deployment
class SpanishGreeter:
    def say_hello(self, name: str) -> str:
        return f"Hola {name}"


language_classifier = LanguageClassifier.bind(EnglishGreeter.bind(), SpanishGreeter.bind())
app = language_classifier
