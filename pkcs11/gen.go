package pkcs11

//go:generate go run ./internal/gen -o ckconst.go ../cmd/cie-pkcs11/include/pkcs11t.h ../cmd/cie-pkcs11/include/pkcs11_3_0.h
