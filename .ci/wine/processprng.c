/*
 * bcryptprimitives.dll for wine 8, which lacks it.
 *
 * Rust's Windows standard library imports ProcessPrng from bcryptprimitives.dll; without
 * the DLL every Rust executable fails to load under wine 8 (status c0000135). This stand-in
 * exports ProcessPrng and fills the buffer from advapi32's RtlGenRandom (SystemFunction036),
 * which wine implements. CI only: it is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
