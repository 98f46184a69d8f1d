*** Settings ***
Documentation     Authentication and format (IEC 62055-41 §9.1): a token under another key, for
...               another meter or mistyped fails the CRC; an entry that is not a 66-bit number in
...               20 digits is a Format error. Nothing is credited either way.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
A credit token for another meter fails the CRC
    [Tags]    id:STS-AUTH-001    group:Authentication
    ...       clause:IEC 62055-41 pipeline: decryption with the meter's key, CRC mismatch -> CRC error (REFERENCE §9.1 step 3, §9.3 code 13)
    Mint And Enter Token    0    0    amount=5.0    key=other_meter
    Entry Should Be Refused As    crc
    Meter Still Accepts Credit

A credit token under another key revision fails the CRC
    [Tags]    id:STS-AUTH-002    group:Authentication
    ...       clause:IEC 62055-41 pipeline: CRC error for a token under another key (REFERENCE §9.1 step 3)
    ...       clause:IEC 62055-41 decoder key derivation depends on the KRN (REFERENCE §7)
    Mint And Enter Token    0    0    amount=5.0    key=other_key
    Entry Should Be Refused As    crc
    Meter Still Accepts Credit

A credit token with one mistyped digit fails the CRC
    [Tags]    id:STS-AUTH-003    group:Authentication
    ...       clause:IEC 62055-41 pipeline: a typing error gives CRC error (REFERENCE §9.1 step 3, §3)
    Mint And Enter Token    0    0    amount=0.7    corrupt=typo
    Entry Should Be Refused As    crc
    Meter Still Accepts Credit

A management token for another meter fails the CRC
    [Tags]    id:STS-AUTH-005    group:Authentication
    ...       clause:IEC 62055-41 class 2 tokens are encrypted under the meter's key (REFERENCE §1, §9.1 step 3)
    Mint And Enter Token    2    0    value=16000    key=other_meter
    Result Should Be    crc
    Display Should Show    crc
    Meter Still Accepts Credit

A 19-digit entry is a format error
    [Tags]    id:STS-FMT-001    group:Format
    ...       clause:IEC 62055-41 pipeline: an entry that is not 20 digits -> Format error (REFERENCE §2, §9.1 step 1, §9.3 code 6)
    ${digits} =    Mint Token    0    0    amount=0.1
    Enter Token    ${digits}[1:]
    Entry Should Be Refused As    format
    Meter Still Accepts Credit

A 21-digit entry is a format error
    [Tags]    id:STS-FMT-003    group:Format
    ...       clause:IEC 62055-41 pipeline: an entry that is not 20 digits -> Format error (REFERENCE §9.1 step 1)
    ${digits} =    Mint Token    0    0    amount=0.1
    Enter Token    ${digits}7
    Entry Should Be Refused As    format
    Meter Still Accepts Credit

A short entry is a format error
    [Tags]    id:STS-FMT-005    group:Format
    ...       clause:IEC 62055-41 pipeline: an entry that is not 20 digits -> Format error (REFERENCE §9.1 step 1)
    Enter Token    12345
    Result Should Be    format
    Display Should Show    format
    Meter Still Accepts Credit
