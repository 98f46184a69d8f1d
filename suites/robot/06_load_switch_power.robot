*** Settings ***
Documentation     Depletion and top-up, and loss of supply (IEC 62055-41 §9.2, §9.5): with no
...               credit the load switch opens and a top-up recloses it per the declared policy;
...               credit, the TID store, the key and the limits survive a power cycle.
Resource          stslab.resource
Test Setup        Meter At Rest


*** Test Cases ***
Running out of credit opens the load switch; a top-up recloses it by itself
    [Tags]    id:STS-LS-001    group:LoadSwitch
    ...       clause:IEC 62055-41 with no credit the load switch opens (REFERENCE §9.5)
    ...       clause:Declared reconnection policy: automatic on credit (REFERENCE §9.5, §10)
    [Documentation]    0.1 kWh lasts 240 s at 1.5 kW: still closed after 200 s, open by 280 s.
    Skip Unless Declared    feature=reconnect_auto
    Mint And Enter Token    2    1    value=0
    Result Should Be    accept
    Credit Should Be    0
    Load Switch Should Be    open    within=5
    Mint And Enter Token    0    0    amount=0.1
    Result Should Be    accept
    Load Switch Should Be    closed    within=5
    Set Load    1500
    Wait Seconds    200
    Load Switch Should Be    closed    within=1
    Load Switch Should Be    open    within=80
    Credit Should Be    0
    Set Load    on=False
    Mint And Enter Token    0    0    amount=1.0
    Result Should Be    accept
    Load Switch Should Be    closed    within=5
    [Teardown]    Set Load    on=False

Running out of credit opens the load switch; after a top-up Enter recloses it
    [Tags]    id:STS-LS-002    group:LoadSwitch
    ...       clause:IEC 62055-41 with no credit the load switch opens (REFERENCE §9.5)
    ...       clause:Declared reconnection policy: on a key press once credit is back (REFERENCE §9.5, §10)
    Skip Unless Declared    feature=reconnect_key
    Skip Unless Declared    carrier=keypad
    Mint And Enter Token    2    1    value=0
    Result Should Be    accept
    Load Switch Should Be    open    within=5
    Mint And Enter Token    0    0    amount=0.1
    Result Should Be    accept
    # credit is back, but the declared policy waits for a key press
    Load Switch Should Be    open    within=1
    Press Keys    ENTER
    Load Switch Should Be    closed    within=5
    Set Load    1500
    Wait Seconds    200
    Load Switch Should Be    closed    within=1
    Load Switch Should Be    open    within=80
    Set Load    on=False
    Mint And Enter Token    0    0    amount=1.0
    Result Should Be    accept
    Press Keys    ENTER
    Load Switch Should Be    closed    within=5
    [Teardown]    Set Load    on=False

Credit, TID store and key survive a power cycle
    [Tags]    id:STS-NV-001    group:NonVolatile
    ...       clause:IEC 62055-41 credit registers are kept (REFERENCE §9.5)
    ...       clause:IEC 62055-41 the TID store is kept (REFERENCE §9.2)
    Prepare Meter    credit=2.0
    ${digits} =    Mint Token    0    0    amount=1.0    rnd=6
    Enter Token    ${digits}
    Result Should Be    accept
    Credit Change Should Be    1.0
    Power Cycle Meter    off_s=5
    Credit Change Should Be    0
    Enter Token    ${digits}
    Entry Should Be Refused As    used
    Credit Token Should Be Accepted    0.5

The maximum power limit survives a power cycle
    [Tags]    id:STS-NV-002    group:NonVolatile
    ...       clause:IEC 62055-41 SetMaximumPowerLimit (REFERENCE §1, §9.5)
    Mint And Enter Token    2    0    value=16000
    Result Should Be    accept
    Power Cycle Meter    off_s=5
    Register Should Be    mpl    16000

Credit survives a long loss of supply
    [Tags]    id:STS-NV-003    group:NonVolatile
    ...       clause:IEC 62055-41 credit registers are kept (REFERENCE §9.5)
    Prepare Meter    credit=1.0
    Power Cycle Meter    off_s=60
    Credit Change Should Be    0
    Credit Token Should Be Accepted    0.2
