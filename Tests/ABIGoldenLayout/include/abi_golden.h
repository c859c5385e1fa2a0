#ifndef SSSONECTOR_ABI_GOLDEN_H
#define SSSONECTOR_ABI_GOLDEN_H
/** Number of layout items (sizes, offsets, constants) the golden table pinned at compile time. */
int sss_abi_golden_checked_items(void);
/** The ABI version the golden table was compiled against. */
int sss_abi_golden_major(void);
int sss_abi_golden_minor(void);
#endif
