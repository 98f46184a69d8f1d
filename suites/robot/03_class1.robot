*** Settings ***
Documentation     InitiateMeterTest (class 1, IEC 62055-41 §9.4): a supported test is accepted, an
...               unsupported one is a Function error, another manufacturer's code a MfrCode
...               error; class 1 carries no TID, so the same token is accepted again.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
Test 0 (all tests) is accepted
    [Tags]    id:STS-C1-001    group:InitiateMeterTest
    ...       clause:IEC 62055-41 InitiateMeterTest: all control bits set = test 0, which every meter supports (REFERENCE §9.4)
    Skip Unless Declared    test=0
    Mint And Enter Token    1    0    tests=all
    Result Should Be    accept
    Display Should Show    accept
    # the test sequence (a few seconds per declared test) runs to its end
    Wait For Credit Display    timeout=600

An unnamed control bit is a function error
    [Tags]    id:STS-C1-013    group:InitiateMeterTest
    ...       clause:IEC 62055-41 InitiateMeterTest: an unsupported test -> Function error (REFERENCE §9.4, §9.3 code 8)
    Skip Unless Declared    test=3
    Mint And Enter Token    1    0    tests=20
    Result Should Be    function
    Display Should Show    function
    Mint And Enter Token    1    0    tests=3
    Result Should Be    accept

A class-1 token for another manufacturer is a MfrCode error
    [Tags]    id:STS-C1-015    group:InitiateMeterTest
    ...       clause:IEC 62055-41 class 1 tokens are authenticated by CRC and MfrCode (REFERENCE §1, §9.1 step 2, §9.3 code 14)
    Skip Unless Declared    test=3
    Mint And Enter Token    1    0    tests=3    mfr_code=other
    Result Should Be    mfr_code
    Display Should Show    mfr_code
    Mint And Enter Token    1    0    tests=3    mfr_code=0
    Result Should Be    accept

A class-1 token with the meter's own MfrCode is accepted
    [Tags]    id:STS-C1-017    group:InitiateMeterTest
    ...       clause:IEC 62055-41 class 1 MfrCode check (REFERENCE §1, §9.1 step 2)
    Skip Unless Declared    test=3
    Mint And Enter Token    1    1    tests=3    mfr_code=own
    Result Should Be    accept
    Display Should Show    accept

A class-1 token is accepted again and again (no TID)
    [Tags]    id:STS-C1-018    group:InitiateMeterTest
    ...       clause:IEC 62055-41 the TID check does not apply to class 1 (REFERENCE §1, §9.2)
    Skip Unless Declared    test=3
    ${digits} =    Mint Token    1    0    tests=3
    Enter Token    ${digits}
    Result Should Be    accept
    Enter Token    ${digits}
    Result Should Be    accept
    Display Should Show    accept
