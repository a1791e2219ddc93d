"""The control plane as a certificate authority: a gateway's certificate request and answer."""

from pydantic import BaseModel, Field


class CertificateRequest(BaseModel):
    # A PKCS#10 certificate signing request, PEM: the key stays with the gateway.
    csr: str = Field(max_length=16_384)


class CertificateIssued(BaseModel):
    certificate: str  # PEM, signed by the control plane's CA
    ca: str  # the CA's certificate, PEM
