package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Options are the signer's side of every signature.
type Options struct {
	// Signer is the private key: the card's (*cie.Signer) in the product.
	// RSA keys are used with PKCS#1 v1.5, never PSS.
	Signer crypto.Signer
	// Chain is the signer's certificate followed by any intermediate CA
	// certificates to embed. The CIE holds only the first.
	Chain []*x509.Certificate
	// Now gives the signing time; nil means time.Now.
	Now func() time.Time
	// Rand is the randomness for ECDSA keys; nil means crypto/rand.
	Rand io.Reader
	// Progress, when set, is called as the data is hashed with the bytes
	// done and the total (-1 when unknown).
	Progress func(done, total int64)
}

// hashAlg is the digest algorithm of every signature made here.
const hashAlg = crypto.SHA256

// ErrNoSigner: Options lacks the signer or its certificate.
var ErrNoSigner = errors.New("sign: no signer or certificate given")

func (o *Options) key() (signerKey, error) {
	if o.Signer == nil || len(o.Chain) == 0 || o.Chain[0] == nil {
		return signerKey{}, ErrNoSigner
	}
	cert := o.Chain[0]
	pub, ok := o.Signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return signerKey{}, errors.New("sign: the signer's key does not match the certificate")
	}
	if _, err := signatureAlgorithmID(cert.PublicKey, hashAlg); err != nil {
		return signerKey{}, err
	}
	r := o.Rand
	if r == nil {
		r = rand.Reader
	}
	return signerKey{signer: o.Signer, cert: cert, rand: r, hash: hashAlg}, nil
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// CAdESOptions configure SignCAdES.
type CAdESOptions struct {
	Options
	// Detached writes a .p7s without the content; otherwise the content is
	// embedded (.p7m).
	Detached bool
}

// SignCAdES signs content, size bytes long, with a CAdES-BES signature and
// writes the .p7m (or, with Detached, the .p7s) to w. Signed attributes:
// content-type, message-digest, signing-time and signing-certificate-v2,
// SHA-256. The content is read once, as a stream, and an attached file is
// written as it is read: memory use does not depend on the size. With an
// RSA key the output is DER; with other keys the three outer lengths of an
// attached file are indefinite (BER), as the signature length is unknown
// until the end. size may be -1 for a detached signature.
func SignCAdES(ctx context.Context, w io.Writer, content io.Reader, size int64, opts CAdESOptions) error {
	k, err := opts.key()
	if err != nil {
		return err
	}
	spec := attrSpec{contentType: oidData, signingTime: opts.now(), cert: k.cert, hash: k.hash}
	parts := sdParts{
		version:      1,
		digestAlgs:   [][]byte{digestAlgorithmID(k.hash)},
		eContentType: oidData,
		certs:        certsDER(opts.Chain),
	}
	if opts.Detached {
		d := k.hash.New()
		if _, err := copyContent(ctx, d, content, size, opts.Progress); err != nil {
			return err
		}
		spec.digest = d.Sum(nil)
		si, err := k.signerInfo(ctx, spec, nil)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		parts.signerInfos = [][]byte{si}
		if _, err := w.Write(parts.encodeDetached()); err != nil {
			return fmt.Errorf("sign: writing the signature: %w", err)
		}
		return nil
	}
	if size < 0 {
		return errors.New("sign: an attached signature needs the content size")
	}
	siLen, err := k.signerInfoLen(spec)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	trailerLen := int64(-1)
	if siLen > 0 {
		parts.signerInfos = [][]byte{make([]byte, siLen)}
		trailerLen = int64(len(parts.trailer()))
	}
	if _, err := w.Write(parts.prefix(size, trailerLen)); err != nil {
		return fmt.Errorf("sign: writing the signature: %w", err)
	}
	d := k.hash.New()
	if _, err := copyContent(ctx, io.MultiWriter(d, w), content, size, opts.Progress); err != nil {
		return err
	}
	spec.digest = d.Sum(nil)
	si, err := k.signerInfo(ctx, spec, nil)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if siLen > 0 && len(si) != siLen {
		return fmt.Errorf("sign: internal error: SignerInfo of %d bytes, expected %d", len(si), siLen)
	}
	parts.signerInfos = [][]byte{si}
	out := parts.trailer()
	if trailerLen < 0 {
		out = append(out, closeIndefinite...)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("sign: writing the signature: %w", err)
	}
	return nil
}

// ErrContentChanged: the content read does not have the expected length, or
// changed between two readings.
var ErrContentChanged = errors.New("sign: the file changed while it was being signed")

// copyContent copies exactly size bytes (all of src when size < 0) from
// src to dst in 1 MiB pieces, checking ctx and reporting progress.
func copyContent(ctx context.Context, dst io.Writer, src io.Reader, size int64, progress func(int64, int64)) (int64, error) {
	buf := make([]byte, 1<<20)
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return done, fmt.Errorf("sign: writing: %w", werr)
			}
			done += int64(n)
			if progress != nil {
				progress(done, size)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return done, fmt.Errorf("sign: reading the data: %w", err)
		}
		if size >= 0 && done > size {
			return done, ErrContentChanged
		}
	}
	if size >= 0 && done != size {
		return done, ErrContentChanged
	}
	return done, nil
}

// multiHash hashes one stream with several algorithms.
type multiHash map[crypto.Hash]hash.Hash

func newMultiHash(hs ...crypto.Hash) multiHash {
	m := multiHash{}
	for _, h := range hs {
		if h.Available() {
			m[h] = h.New()
		}
	}
	return m
}

func (m multiHash) Write(p []byte) (int, error) {
	for _, h := range m {
		h.Write(p)
	}
	return len(p), nil
}

func (m multiHash) sums() map[crypto.Hash][]byte {
	out := map[crypto.Hash][]byte{}
	for k, h := range m {
		out[k] = h.Sum(nil)
	}
	return out
}

// signerHashes lists the digest algorithms a SignedData's signers use,
// plus SHA-256.
func signerHashes(sd *signedData) []crypto.Hash {
	hs := []crypto.Hash{hashAlg}
	for _, si := range sd.signers {
		if h, ok := hashForOID(si.digestAlg); ok {
			hs = append(hs, h)
		}
	}
	return hs
}

// AddOptions configure AddCAdES.
type AddOptions struct {
	Options
	// Countersign, when above 0, counter-signs the existing signature with
	// this number (1-based, in file order) instead of adding a parallel
	// signature: the new SignerInfo signs that signature's value and goes in
	// its unsigned attributes (RFC 5652 §11.4).
	Countersign int
}

// AddCAdES adds a signature to an existing .p7m or .p7s (DER, BER or
// Base64), size bytes read from p7, and writes the result (DER) to w: a
// parallel signature over the same content, or a counter-signature. For a
// detached .p7s, data is the original file (ignored otherwise, and not
// needed to counter-sign). The earlier SignerInfos are copied byte for byte;
// a counter-signed one only gains an unsigned attribute, so every earlier
// signature stays valid. Before signing, the content is checked against the
// earlier signatures' message digests: a signature is never added to
// content they do not cover. An attached file is read twice (hash, then
// copy) and never held in memory.
func AddCAdES(ctx context.Context, w io.Writer, p7 io.ReaderAt, size int64, data io.Reader, opts AddOptions) error {
	k, err := opts.key()
	if err != nil {
		return err
	}
	// An attached file is read twice (hash, then copy), a detached one once.
	prog := &progressReader{progress: opts.Progress, total: 2 * size}
	var mh multiHash
	in, err := cmsInput(prog.wrap(ctx, io.NewSectionReader(p7, 0, size)))
	if err != nil {
		return err
	}
	sd, err := readSignedData(in, func(sd *signedData) (io.Writer, error) {
		mh = newMultiHash(signerHashes(sd)...)
		return mh, nil
	})
	if err != nil {
		return fmt.Errorf("sign: reading the signed file: %w", err)
	}
	if len(sd.signers) == 0 {
		return errors.New("sign: the signed file has no signature to add to")
	}
	parts := sd.sdParts
	parts.certs = append(parts.certs, certsDER(opts.Chain)...)
	now := opts.now()

	if opts.Countersign > 0 {
		if opts.Countersign > len(sd.signers) {
			return fmt.Errorf("sign: there is no signature %d to counter-sign (the file has %d)", opts.Countersign, len(sd.signers))
		}
		target := sd.signers[opts.Countersign-1]
		d := k.hash.New()
		d.Write(target.signature)
		cs, err := k.signerInfo(ctx, attrSpec{digest: d.Sum(nil), signingTime: now, cert: k.cert, hash: k.hash}, nil)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		unsigned := append(append([][]byte{}, target.unsignedRaw...), attribute(oidCountersignature, cs))
		parts.signerInfos = append([][]byte{}, parts.signerInfos...)
		parts.signerInfos[opts.Countersign-1] = wrap(0x30, target.beforeUnsigned, setOf(unsignedAttrsTag, unsigned))
	} else {
		if !sd.attached {
			if data == nil {
				return errors.New("sign: the .p7s is detached: give the original file to add a signature")
			}
			mh = newMultiHash(signerHashes(sd)...)
			if _, err := copyContent(ctx, mh, data, -1, nil); err != nil {
				return err
			}
		}
		sums := mh.sums()
		for i, si := range sd.signers {
			if err := checkMessageDigest(si, sums); err != nil {
				return fmt.Errorf("sign: signature %d does not cover this content (%v): refusing to add a signature", i+1, err)
			}
		}
		si, err := k.signerInfo(ctx, attrSpec{contentType: sd.eContentType, digest: sums[k.hash], signingTime: now, cert: k.cert, hash: k.hash}, nil)
		if err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		parts.signerInfos = append(append([][]byte{}, parts.signerInfos...), si)
		parts.digestAlgs = append(append([][]byte{}, parts.digestAlgs...), digestAlgorithmID(k.hash))
	}
	parts.version = max(parts.version, sdVersion(parts.eContentType, signerVersions(sd)))

	if !sd.attached {
		if opts.Progress != nil {
			opts.Progress(prog.total, prog.total)
		}
		if _, err := w.Write(parts.encodeDetached()); err != nil {
			return fmt.Errorf("sign: writing the signature: %w", err)
		}
		return nil
	}
	trailer := parts.trailer()
	if _, err := w.Write(parts.prefix(sd.contentLen, int64(len(trailer)))); err != nil {
		return fmt.Errorf("sign: writing the signature: %w", err)
	}
	// Second reading: copy the content, and check it is what was hashed.
	first := mh.sums()[hashAlg]
	check := hashAlg.New()
	var copied int64
	in, err = cmsInput(prog.wrap(ctx, io.NewSectionReader(p7, 0, size)))
	if err != nil {
		return err
	}
	cw := &countWriter{w: io.MultiWriter(check, w), n: &copied}
	if _, err := readSignedData(in, func(*signedData) (io.Writer, error) { return cw, nil }); err != nil {
		return fmt.Errorf("sign: reading the signed file again: %w", err)
	}
	if copied != sd.contentLen || !bytes.Equal(check.Sum(nil), first) {
		return ErrContentChanged
	}
	if _, err := w.Write(trailer); err != nil {
		return fmt.Errorf("sign: writing the signature: %w", err)
	}
	return nil
}

// errStop ends a reading early on purpose.
var errStop = errors.New("stop")

// IsDetached reports whether the signed file read from r (DER, BER or
// Base64) is a detached signature (.p7s) that needs the original file. It
// reads only up to the content.
func IsDetached(r io.Reader) (bool, error) {
	in, err := cmsInput(r)
	if err != nil {
		return false, err
	}
	_, err = readSignedData(in, func(*signedData) (io.Writer, error) { return nil, errStop })
	switch {
	case errors.Is(err, errStop):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sign: reading the signed file: %w", err)
	}
	return true, nil
}

func signerVersions(sd *signedData) []int {
	var v []int
	for _, si := range sd.signers {
		v = append(v, int(si.version))
	}
	return v
}

// checkMessageDigest compares the message-digest attribute of si with the
// content digests.
func checkMessageDigest(si *signerInfo, sums map[crypto.Hash][]byte) error {
	h, ok := hashForOID(si.digestAlg)
	if !ok {
		return fmt.Errorf("unsupported digest algorithm %v", si.digestAlg)
	}
	want, err := messageDigest(si)
	if err != nil {
		return err
	}
	if !bytes.Equal(want, sums[h]) {
		return errors.New("message digest mismatch")
	}
	return nil
}

// messageDigest returns the message-digest attribute value of si.
func messageDigest(si *signerInfo) ([]byte, error) {
	vals, ok := findAttr(si.attrs, oidMessageDigest)
	if !ok || len(vals) != 1 {
		return nil, errors.New("no message-digest attribute")
	}
	var md []byte
	if err := unmarshalExact(vals[0], &md); err != nil {
		return nil, errors.New("malformed message-digest attribute")
	}
	return md, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// progressReader reports the bytes read through it, across several
// readings, and stops on cancellation.
type progressReader struct {
	progress func(done, total int64)
	total    int64
	done     int64
}

func (p *progressReader) wrap(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(b []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := r.Read(b)
		p.done += int64(n)
		if p.progress != nil && n > 0 {
			p.progress(p.done, p.total)
		}
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }
