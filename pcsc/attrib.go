package pcsc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ebfe/scard"
)

// Reader properties of PC/SC v2 part 10 ("IFDs with Feature
// Capabilities"): the driver lists its features in answer to
// CM_IOCTL_GET_FEATURE_REQUEST (§2.2), each a tag and a control code; the
// feature FEATURE_GET_TLV_PROPERTIES (§2.6.14) answers a list of
// properties, tag, length, value (integers little-endian).
const (
	ioctlGetFeatureRequest  = 3400 // SCARD_CTL_CODE(3400)
	featureGetTLVProperties = 0x12
)

// PropMaxAPDUDataSize is the property dwMaxAPDUDataSize (part 10
// §2.6.14): 0 when the reader carries short APDUs only, otherwise the
// largest data field of an extended-length APDU it carries (libccid
// derives it from the CCID descriptor's exchange level).
const PropMaxAPDUDataSize = 0x0A

// ErrNoProperties: the reader driver does not answer FEATURE_GET_TLV_PROPERTIES.
var ErrNoProperties = errors.New("the reader driver reports no PC/SC part 10 properties")

// ReaderProperties returns the PC/SC v2 part 10 properties of the reader's
// driver, tag → value as sent (see PropertyUint). It connects in direct
// mode, which needs no card and sends nothing to one. A driver without the
// feature gives an error matching ErrNoProperties (and the PC/SC code, if
// any). ctx is checked before connecting.
func (c *Context) ReaderProperties(ctx context.Context, reader string) (map[byte][]byte, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("reading the properties of %q", reader)
	var sc *scard.Card
	if err := c.call(func() (err error) {
		sc, err = c.sc.Connect(reader, scard.ShareDirect, scard.ProtocolUndefined)
		return err
	}); err != nil {
		return nil, wrap(op, err)
	}
	defer c.call(func() error { return sc.Disconnect(scard.LeaveCard) })

	var feats []byte
	err := c.call(func() (err error) { feats, err = sc.Control(scard.CtlCode(ioctlGetFeatureRequest), nil); return err })
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProperties, wrap(op, err))
	}
	ioctl, ok := parseFeatures(feats)[featureGetTLVProperties]
	if !ok {
		return nil, ErrNoProperties
	}
	var props []byte
	if err := c.call(func() (err error) { props, err = sc.Control(ioctl, nil); return err }); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProperties, wrap(op, err))
	}
	return parseProperties(props)
}

// parseFeatures reads the answer to CM_IOCTL_GET_FEATURE_REQUEST: tag,
// length 4, control code big-endian. Malformed entries end the list.
func parseFeatures(b []byte) map[byte]uint32 {
	out := map[byte]uint32{}
	for len(b) >= 2 {
		tag, n := b[0], int(b[1])
		if n != 4 || len(b) < 2+n {
			break
		}
		out[tag] = binary.BigEndian.Uint32(b[2:6])
		b = b[2+n:]
	}
	return out
}

// parseProperties reads the answer to FEATURE_GET_TLV_PROPERTIES.
func parseProperties(b []byte) (map[byte][]byte, error) {
	out := map[byte][]byte{}
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return nil, fmt.Errorf("pcsc: reading reader properties: truncated property list % X", b)
		}
		n := int(b[1])
		out[b[0]] = append([]byte(nil), b[2:2+n]...)
		b = b[2+n:]
	}
	return out, nil
}

// PropertyUint decodes an integer property: 1, 2 or 4 bytes,
// little-endian. ok is false for other lengths.
func PropertyUint(v []byte) (n uint32, ok bool) {
	switch len(v) {
	case 1:
		return uint32(v[0]), true
	case 2:
		return uint32(binary.LittleEndian.Uint16(v)), true
	case 4:
		return binary.LittleEndian.Uint32(v), true
	}
	return 0, false
}
