"""Image decoding for ingestion, the service and the Python API: DICOM → float32 image in [0, 1],
displayed the way the header asks — within a pixel budget.

Order follows the DICOM grayscale pipeline: stored values → modality LUT (rescale slope and
intercept) → VOI LUT or window (with its VOILUTFunction) → presentation (MONOCHROME1 means low
values are white, so it is inverted). The LUTs and the window are pydicom's
(`pydicom.pixels.apply_modality_lut`, `apply_voi_lut`, `apply_windowing`), applied a strip of
rows at a time within the bounds below. Only pixels come out: identifying header attributes never leave this package, and no
message quotes a header value (a message names the attribute that is wrong, never its content).

Every file is treated as hostile until its header has been checked (`inspect_dicom`), and what
reading it costs depends on its header and its first frame, never on the rest of the file:
- the header (everything before the pixel data) must lie in the first `HEADER_BYTES` of the file
  (of the inflated dataset, for a deflated file, which has only that much inflated to read it)
  and is parsed in at most `MAX_HEADER_READS` reads (16,000 to 50,000 elements: a radiograph's
  header has a few hundred); nothing after the pixel data element is ever parsed;
- the file meta must name its transfer syntax, and the dataset must hold pixel data;
- Modality must be one of `DecodeLimits.modalities` (CR and DX by default: this model reads
  chest radiographs); a file with no Modality is refused, as Modality is mandatory in every
  DICOM image (UMCL_DICOM_MODALITIES=`*` accepts any file, with or without one);
- grayscale (MONOCHROME1/2) or colour (RGB, YBR: reduced to luminance), 8 or 16 bits;
- Rows × Columns must fit the pixel budget (`UMCL_MAX_PIXELS`); only the first frame of a
  multi-frame file is read from the file and decoded, except that a deflated file must be
  inflated whole, so all its frames count against the budget and it may inflate no further
  than its header declares;
- a compressed first frame is found reading at most twice its decoded size, must declare the
  size the header does (JPEG, JPEG-LS, JPEG 2000), a JPEG frame may hold at most
  `MAX_JPEG_SCANS` scans, and an RLE frame may not expand beyond its size;
- a LUT sequence (parsed when first read) may hold at most `LUT_SEQUENCE_BYTES`;
- anything malformed (a non-numeric window or rescale, an odd LUT descriptor, YBR colour that
  cannot be decoded, …) raises `ImageDecodeError`, never another exception type; an empty VOI
  LUT sequence means no VOI LUT (the window, else min–max, applies).
"""
