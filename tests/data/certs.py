"""Test certificate factory. Every key is generated at test time into a temporary directory;
no private key is ever committed. Identities are listed in tests/data/README.md."""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn=None, email=None):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qtls tests")]
    if cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attrs)


class Identity:
    def __init__(self, directory, label, key, cert):
        self.key, self.cert = key, cert
        self.cert_path = os.path.join(directory, label + ".crt")
        self.key_path = os.path.join(directory, label + ".key")
        self.pem_path = os.path.join(directory, label + ".pem")  # key + chain, qmail style
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        with open(self.cert_path, "wb") as f:
            f.write(cert_pem)
        with open(self.key_path, "wb") as f:
            f.write(key_pem)
        os.chmod(self.key_path, 0o600)
        with open(self.pem_path, "wb") as f:
            f.write(key_pem + cert_pem)
        os.chmod(self.pem_path, 0o600)

    def sha256_hex(self):
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def spki_sha256_hex(self):
        spki = self.cert.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        h = hashes.Hash(hashes.SHA256())
        h.update(spki)
        return h.finalize().hex()


class CertFactory:
    """Makes a CA and leaf identities signed by it, in `directory`."""

    def __init__(self, directory, ca_name="qtls test CA"):
        self.dir = directory
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(_name(ca_name)).issuer_name(_name(ca_name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_NOW - datetime.timedelta(days=1))
                .not_valid_after(_NOW + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                             False), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca = Identity(directory, ca_name.replace(" ", "_"), key, cert)

    def rsa_leaf(self, label, **kw):
        """Like leaf(), with a 2048-bit RSA key."""
        return self.leaf(label, key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                         **kw)

    def leaf(self, label, cn=None, dns=(), ips=("127.0.0.1",), email=None, expired=False,
             not_yet_valid=False, self_signed=False, key=None):
        key = key or ec.generate_private_key(ec.SECP256R1())
        if expired:
            start, end = _NOW - datetime.timedelta(days=60), _NOW - datetime.timedelta(days=30)
        elif not_yet_valid:
            start, end = _NOW + datetime.timedelta(days=30), _NOW + datetime.timedelta(days=60)
        else:
            start, end = _NOW - datetime.timedelta(days=1), _NOW + datetime.timedelta(days=30)
        subject = _name(cn, email)
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(subject if self_signed else self.ca.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end))
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if email:
            sans.append(x509.RFC822Name(email))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(key if self_signed else self.ca.key, hashes.SHA256())
        return Identity(self.dir, label, key, cert)

    def crl(self, label, revoked):
        """A CRL from this CA revoking the given identities."""
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.ca.cert.subject)
             .last_update(_NOW - datetime.timedelta(days=1))
             .next_update(_NOW + datetime.timedelta(days=30)))
        for ident in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(ident.cert.serial_number)
                .revocation_date(_NOW - datetime.timedelta(hours=1)).build())
        path = os.path.join(self.dir, label + ".crl")
        with open(path, "wb") as f:
            f.write(b.sign(self.ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path
