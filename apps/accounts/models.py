from knox.models import AuthToken


class ApiKey(AuthToken):
    """A customer's API key as the shop names it (django-rest-knox's AuthToken: a digest, never the key)."""

    class Meta:
        proxy = True
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"API key of {self.user} since {self.created:%Y-%m-%d}"
