// Header-only target: the ABI lives in include/sssonector_stage.h. SwiftPM needs one source.
