*** Settings ***
Documentation     Key changes (IEC 62055-41 §8): a whole set installs the new key in either order,
...               half a set changes nothing, a change to a DITK is refused, and under a default
...               key (DDTK) credit is refused while management tokens are not.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
A key change to another KRN is installed
    [Tags]    id:STS-KC-001    group:KeyChange
    ...       clause:IEC 62055-41 Set1stSectionDecoderKey carries the new KRN (REFERENCE §8)
    ...       clause:IEC 62055-41 tokens under the replaced key fail the CRC (REFERENCE §9.1 step 3)
    Enter Key Change    krn=7
    Result Should Be    accept
    Register Should Be    krn    7
    Register Should Be    kt    2
    Credit Token Should Be Accepted    0.1
    Mint And Enter Token    0    0    amount=0.1    key=previous
    Entry Should Be Refused As    crc
    Meter Still Accepts Credit

A 2-token key change set in order 1, 2
    [Tags]    id:STS-KC-002    group:KeyChange
    ...       clause:IEC 62055-41 64-bit key: Set1stSection and Set2ndSection (REFERENCE §8)
    ...       clause:IEC 62055-41 results 2 (1stKCT received) and 1 (REFERENCE §9.3)
    Skip Unless Declared    feature=kct_2
    Enter Key Change    order=[1, 2]
    Section Results Should Be    kct1_received    accept
    Credit Token Should Be Accepted    0.1

A 2-token key change set in order 2, 1
    [Tags]    id:STS-KC-003    group:KeyChange
    ...       clause:IEC 62055-41 the set is acted on when complete, in either order (REFERENCE §8)
    ...       clause:IEC 62055-41 results 3 (2ndKCT received) and 1 (REFERENCE §9.3)
    Skip Unless Declared    feature=kct_2
    Enter Key Change    order=[2, 1]
    Section Results Should Be    kct2_received    accept
    Credit Token Should Be Accepted    0.1

Half a key change set changes nothing
    [Tags]    id:STS-KC-006    group:KeyChange
    ...       clause:IEC 62055-41 the key changes only when the whole set is in (REFERENCE §8, §9.1 step 4)
    Enter Key Change    order=[1]
    Section Results Should Be    kct1_received
    Mint And Enter Token    0    0    amount=0.1
    Result Should Be    accept
    Display Should Show    accept
    Credit Change Should Be    0.1
    Enter Key Change
    Result Should Be    accept
    Credit Token Should Be Accepted    0.1

A key change to DITK is refused with a key type error
    [Tags]    id:STS-KC-007    group:KeyChange
    ...       clause:IEC 62055-41 KT change rule: never to DITK (KT 0) unless already DITK (REFERENCE §8, §10)
    ...       clause:IEC 62055-41 result 5: key type error (REFERENCE §9.3)
    Enter Key Change    kt=0
    Result Should Be    key_type
    Register Should Be    kt    2
    Credit Token Should Be Accepted    0.1

Under a default key (DDTK) credit is refused, management tokens are not
    [Tags]    id:STS-KC-010    group:KeyChange
    ...       clause:IEC 62055-41 a meter on a DDTK (KT 1) refuses TransferCredit with DDTK error but processes management tokens and KCTs (REFERENCE §9.1 step 5, §9.3 code 12)
    Enter Key Change    kt=1
    Result Should Be    accept
    Register Should Be    kt    1
    Mint And Enter Token    0    0    amount=1.0
    Entry Should Be Refused As    ddtk
    Mint And Enter Token    2    0    value=16000
    Result Should Be    accept
    Register Should Be    mpl    16000
    Enter Key Change    kt=2
    Result Should Be    accept
    Register Should Be    kt    2
    Credit Token Should Be Accepted    1.0
