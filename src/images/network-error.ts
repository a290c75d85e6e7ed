// Download failures as people can act on them. undici reports a TLS verification failure with
// OpenSSL's code (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN…) deep in `cause`;
// say plainly that the certificate could not be verified and what to configure.
/** undici's TLS errors say what failed; make the common one plain. */
export function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `the server's TLS certificate could not be verified against the configured CA bundle (${code}); configure the CA that issued the image server's certificate`;
  }
  return `${e?.message ?? String(err)}${code ? ` (${code})` : ''}`;
}
