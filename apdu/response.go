package apdu

import "fmt"

// Response is a response APDU: the data field and the trailing status word.
type Response struct {
	Data []byte
	SW   StatusWord
}

// ParseResponse splits a response APDU into data and status word. Data
// aliases b.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, fmt.Errorf("parsing response: %d bytes: %w", len(b), ErrMalformed)
	}
	n := len(b) - 2
	return Response{Data: b[:n], SW: StatusWord(uint16(b[n])<<8 | uint16(b[n+1]))}, nil
}

// Bytes encodes the response as data || SW1 SW2.
func (r Response) Bytes() []byte {
	out := make([]byte, 0, len(r.Data)+2)
	out = append(out, r.Data...)
	return append(out, r.SW.SW1(), r.SW.SW2())
}

// Err returns nil when the status word is 9000 and the status word's error
// otherwise (see StatusWord.Err).
func (r Response) Err() error { return r.SW.Err() }
